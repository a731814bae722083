// A heatmap worker thread: draws one heatmap at a time (resize, colour, blend, PNG encode; heatmap.ts)
// so that none of it runs on the service's event loop.

import { parentPort } from 'node:worker_threads';
import { renderHeatmap } from './heatmap.js';
import type { DrawReply, DrawRequest } from './draws.js';

parentPort!.on('message', (m: DrawRequest) => {
  renderHeatmap(m.grid, { ...m.view, data: Buffer.from(m.view.data) }, m.options).then(
    (png) => {
      const bytes = new Uint8Array(png); // its own buffer (sharp's may be shared), so it can be transferred
      parentPort!.postMessage({ id: m.id, png: bytes } satisfies DrawReply, [bytes.buffer]);
    },
    (err: Error) => parentPort!.postMessage({ id: m.id, error: err.message } satisfies DrawReply),
  );
});
