/**
 * A hostile SFU hop for the bench, on one audio link: the "record" receiver keeps the
 * encrypted frames that arrive from the publisher, the "send" sender forwards them in
 * order in place of its own frames, and after a `replay` message it sends `n` frames it
 * already forwarded (about a second old) instead: a replay, byte for byte.
 */
const queue = [];
const history = [];
let replayLeft = 0;
let replayed = 0;

self.onmessage = (event) => {
  if (event.data?.type === "replay") replayLeft = event.data.n;
  if (event.data?.type === "count") self.postMessage({ type: "count", replayed });
};

self.onrtctransform = (event) => {
  const t = event.transformer;
  const role = t.options.role;
  const transform = new TransformStream({
    transform(frame, controller) {
      if (role === "record") {
        if (queue.length < 200) queue.push(new Uint8Array(frame.data).slice());
        return; // the relay's receiver plays nothing
      }
      let data;
      if (replayLeft > 0 && history.length > 60) {
        data = history[history.length - 50];
        replayLeft--;
        replayed++;
      } else {
        data = queue.shift();
        if (!data) return;
        history.push(data);
        if (history.length > 500) history.shift();
      }
      frame.data = data.slice().buffer;
      controller.enqueue(frame);
    },
  });
  t.readable.pipeThrough(transform).pipeTo(t.writable);
};
