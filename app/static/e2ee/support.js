/**
 * What the browser offers for E2EE: feature detection and the codec restriction.
 *
 * Split from index.js so the pure browser checks stay apart from the engine's state.
 */

export function hasScriptTransform() {
  return typeof globalThis.RTCRtpScriptTransform === "function";
}

export function hasEncodedStreams() {
  return (
    typeof globalThis.RTCRtpSender === "function" &&
    "createEncodedStreams" in globalThis.RTCRtpSender.prototype
  );
}

/** Whether this browser can do E2EE at all (a secure context and an encoded-frame API). */
export function supported() {
  return (
    Boolean(globalThis.crypto?.subtle) &&
    typeof globalThis.Worker === "function" &&
    (hasScriptTransform() || hasEncodedStreams())
  );
}

/**
 * Restricts a transceiver to the codecs the frame format handles (VP8, Opus): the clear
 * prefix rule is codec-specific, and H.264 would need NAL parsing. RTX is kept (it works
 * below the frame level); RED is left out for audio because it repackages frames.
 * Call before createOffer/createAnswer. Returns false where the browser cannot do it.
 */
export function preferE2eeCodecs(transceiver, kind) {
  if (typeof transceiver.setCodecPreferences !== "function") return false;
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.(kind);
  if (!caps) return false;
  const wanted = kind === "audio" ? /^audio\/opus$/i : /^video\/(vp8|rtx)$/i;
  const codecs = caps.codecs.filter((c) => wanted.test(c.mimeType));
  if (!codecs.some((c) => /vp8|opus/i.test(c.mimeType))) return false;
  transceiver.setCodecPreferences(codecs);
  return true;
}
