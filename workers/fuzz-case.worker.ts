// A piscina worker of a fuzz campaign (src/fuzz/executor.ts starts it from dist/): each task is a
// batch of cases to draw and run, or one failing case to shrink. Everything it needs is in the task;
// the machines it builds are kept per thread and reused across tasks.
import { doFuzzTask } from '../src/fuzz/tasks.js';

export default doFuzzTask;
