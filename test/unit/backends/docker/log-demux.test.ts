import { describe, expect, it } from "vitest";
import { LogDemuxer, muxFrame } from "../../../../src/backends/docker/log-demux.js";

const TS = "2026-01-02T03:04:05.123456789Z ";
const AT = Date.parse("2026-01-02T03:04:05.123Z");

describe("the multiplexed log stream", () => {
  it("splits stdout and stderr into lines with their time", () => {
    const demux = new LogDemuxer();
    const entries = demux.push(
      Buffer.concat([muxFrame("stdout", `${TS}hello\n`), muxFrame("stderr", `${TS}oops\n`)]),
    );
    expect(entries).toEqual([
      { stream: "stdout", line: "hello", at: AT },
      { stream: "stderr", line: "oops", at: AT },
    ]);
  });

  it("waits for a frame split across chunks, at any byte", () => {
    const whole = Buffer.concat([muxFrame("stdout", `${TS}one\n`), muxFrame("stdout", `${TS}two\n`)]);
    for (let cut = 1; cut < whole.length; cut++) {
      const demux = new LogDemuxer();
      const lines = [
        ...demux.push(whole.subarray(0, cut)),
        ...demux.push(whole.subarray(cut)),
        ...demux.end(),
      ];
      expect(lines.map((e) => e.line)).toEqual(["one", "two"]);
    }
  });

  it("joins a long message sent in parts, keeping the time of its start", () => {
    const demux = new LogDemuxer();
    const later = "2026-01-02T03:04:06Z ";
    const entries = [
      ...demux.push(muxFrame("stdout", `${TS}first half `)),
      ...demux.push(muxFrame("stdout", `${later}second half\n`)),
    ];
    expect(entries).toEqual([{ stream: "stdout", line: "first half second half", at: AT }]);
  });

  it("keeps a UTF-8 character split between two parts whole", () => {
    const demux = new LogDemuxer();
    const euro = Buffer.from("€", "utf8");
    const entries = [
      ...demux.push(muxFrame("stdout", Buffer.concat([Buffer.from(TS), euro.subarray(0, 1)]))),
      ...demux.push(
        muxFrame("stdout", Buffer.concat([Buffer.from(TS), euro.subarray(1), Buffer.from("\n")])),
      ),
    ];
    expect(entries.map((e) => e.line)).toEqual(["€"]);
  });

  it("yields an unfinished last line at the end, and drops carriage returns", () => {
    const demux = new LogDemuxer();
    expect(demux.push(muxFrame("stdout", `${TS}crlf\r\n`))).toEqual([
      { stream: "stdout", line: "crlf", at: AT },
    ]);
    expect(demux.push(muxFrame("stdout", `${TS}no newline`))).toEqual([]);
    expect(demux.end()).toEqual([{ stream: "stdout", line: "no newline", at: AT }]);
  });

  it("reads lines without times when asked for none", () => {
    const demux = new LogDemuxer(false);
    expect(demux.push(muxFrame("stdout", "a\nb\n"))).toEqual([
      { stream: "stdout", line: "a" },
      { stream: "stdout", line: "b" },
    ]);
  });
});
