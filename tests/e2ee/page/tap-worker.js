/**
 * A receive transform that only looks: it reports what arrived over RTP (size, first
 * bytes, last bytes) and passes the frame on untouched. Used to prove ciphertext on the wire.
 */
let sent = 0;
self.onrtctransform = (event) => {
  const t = event.transformer;
  const { kind } = t.options;
  t.readable
    .pipeThrough(
      new TransformStream({
        transform(frame, controller) {
          if (sent < 400) {
            const d = new Uint8Array(frame.data);
            self.postMessage({
              kind,
              type: frame.type ?? null,
              mimeType: frame.getMetadata?.().mimeType ?? null,
              size: d.byteLength,
              head: Array.from(d.subarray(0, 12)),
              tail: Array.from(d.subarray(Math.max(0, d.byteLength - 12))),
            });
            sent++;
          }
          controller.enqueue(frame);
        },
      }),
    )
    .pipeTo(t.writable);
};
