import { describe, expect, it } from "vitest";
import { closest, parseCommandArgs, UsageError } from "../../../src/cli/command.js";
import { COMMANDS } from "../../../src/cli/main.js";

describe("what a typo most likely meant", () => {
  const names = COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]);

  it.each([
    ["lss", "ls"],
    ["sotp", "stop"],
    ["destory", "destroy"],
    ["serv", "serve"],
    ["even", "events"],
    ["lgos", "logs"],
  ])("reads %s as %s", (typed, meant) => expect(closest(typed, names)).toBe(meant));

  it.each(["frobnicate", "x", "deploy"])("suggests nothing for %s", (typed) =>
    expect(closest(typed, names)).toBeUndefined(),
  );

  it("suggests the option an unknown one most likely meant, for any command", () => {
    const stop = COMMANDS.find((c) => c.name === "stop")!;
    const message = (args: string[]) => {
      try {
        parseCommandArgs(stop, args);
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as UsageError).message;
      }
    };
    expect(message(["--gracee", "5s", "x"])).toBe("Unknown option '--gracee'; did you mean --grace?");
    expect(message(["--frobnicate"])).toBe("Unknown option '--frobnicate'");
  });
});
