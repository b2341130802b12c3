/** The conformance suite against the plain ProcessBackend (see process-suite.ts). */
import { describeProcessConformance } from "./process-suite.js";

describeProcessConformance("ProcessBackend");
