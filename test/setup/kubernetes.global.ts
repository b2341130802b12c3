/** Global setup of this substrate's test project (filled in by the substrate's own work). */
export default async function setup(): Promise<() => Promise<void>> {
  throw new Error("substrate setup not implemented yet");
}
