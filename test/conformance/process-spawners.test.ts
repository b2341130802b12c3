/**
 * The conformance suite against ProcessBackend with spawners: workloads forked by the
 * supervisor's spawner processes, held to the same contract as the supervisor's own (real exit
 * codes and signals, the workload's children reached by its signals, logs, recovery, cleanup).
 */
import { describeProcessConformance } from "./process-suite.js";

describeProcessConformance("ProcessBackend (spawners)", { spawners: 2 });
