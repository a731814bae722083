// How the pool stops an inference worker (shared by both sides; the worker module itself only runs in a worker).
//
// Stopping a worker: terminate() while ONNX Runtime runs aborts the whole process (the run returns
// into a torn-down environment; measured with onnxruntime-node here), so the pool asks instead and the
// worker leaves between runs. control[0] = CRASH makes it exit (code 1) before it answers the run in
// progress, as a crash would; the 'stop' and 'crash' messages end an idle worker.

export const CRASH = 1;
export type WorkerCommand = { type: 'stop' } | { type: 'crash' };
