// Init script for tests/privacy: every RTCPeerConnection the product page creates is
// forced to iceTransportPolicy "relay" (only TURN candidates), and kept in
// window.__kreisPeers so the test can read which candidate pair carried the media.
(() => {
  const Native = window.RTCPeerConnection;
  const peers = [];
  function Relayed(config, ...rest) {
    const forced = Object.assign({}, config || {}, { iceTransportPolicy: "relay" });
    const pc = new Native(forced, ...rest);
    peers.push({ pc, iceServers: forced.iceServers || [] });
    return pc;
  }
  Relayed.prototype = Native.prototype;
  Object.setPrototypeOf(Relayed, Native);
  window.RTCPeerConnection = Relayed;
  window.__kreisPeers = peers;
  window.__kreisPairs = async () => {
    const out = [];
    for (const { pc, iceServers } of peers) {
      const stats = await pc.getStats();
      let local = null;
      let remote = null;
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) {
          local = stats.get(s.localCandidateId).candidateType;
          remote = stats.get(s.remoteCandidateId).candidateType;
        }
      });
      out.push({ state: pc.connectionState, local, remote, iceServers });
    }
    return out;
  };
})();
