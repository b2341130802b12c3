/**
 * The conformance suite against ProcessBackend in sandbox mode: every workload runs in
 * bubblewrap, held to the same contract as the plain process backend (exit codes, 143 for
 * terminate, the workload's children reached by its signals, logs, recovery, cleanup).
 */
import { describeProcessConformance } from "./process-suite.js";

describeProcessConformance("ProcessBackend (sandbox)", { sandbox: {} });
