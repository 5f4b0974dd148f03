// Test page for tests/privacy: two peer connections in one page, forced through TURN.
// Loaded under the product's CSP (no inline script), so it also proves the CSP allows
// WebRTC with a same-origin page. Results go to window.kreisResult for the test to read.
"use strict";

async function relayCall(iceServers, seconds) {
  const config = { iceServers, iceTransportPolicy: "relay" };
  const sender = new RTCPeerConnection(config);
  const receiver = new RTCPeerConnection(config);
  const candidates = { sender: [], receiver: [] };
  // Audio is only decoded (and its energy measured) when something plays it.
  const sink = document.createElement("audio");
  sink.autoplay = true;
  document.body.appendChild(sink);
  receiver.ontrack = (e) => { if (e.track.kind === "audio") sink.srcObject = new MediaStream([e.track]); };
  sender.onicecandidate = (e) => {
    if (e.candidate) { candidates.sender.push(e.candidate.type); receiver.addIceCandidate(e.candidate); }
  };
  receiver.onicecandidate = (e) => {
    if (e.candidate) { candidates.receiver.push(e.candidate.type); sender.addIceCandidate(e.candidate); }
  };
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  for (const track of stream.getTracks()) sender.addTrack(track, stream);
  const offer = await sender.createOffer();
  await sender.setLocalDescription(offer);
  await receiver.setRemoteDescription(offer);
  const answer = await receiver.createAnswer();
  await receiver.setLocalDescription(answer);
  await sender.setRemoteDescription(answer);

  const deadline = Date.now() + seconds * 1000;
  const result = {
    connected: false, framesDecoded: 0, audioPackets: 0, audioEnergy: 0, localType: null, remoteType: null,
  };
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const stats = await receiver.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") result.framesDecoded = s.framesDecoded || 0;
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        result.audioPackets = s.packetsReceived || 0;
        result.audioEnergy = s.totalAudioEnergy || 0;
      }
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) pair = s;
    });
    if (pair) {
      result.connected = true;
      result.localType = stats.get(pair.localCandidateId).candidateType;
      result.remoteType = stats.get(pair.remoteCandidateId).candidateType;
    }
    if (result.framesDecoded > 10 && result.audioEnergy > 0) break;
  }
  result.candidates = candidates;
  result.iceState = receiver.iceConnectionState;
  sink.remove();
  sender.close();
  receiver.close();
  for (const track of stream.getTracks()) track.stop();
  return result;
}

function socketCheck(url) {
  // Resolves with "open", "error" or "csp" (blocked by connect-src before any traffic).
  return new Promise((resolve) => {
    const onViolation = (e) => { if (e.violatedDirective.startsWith("connect-src")) resolve("csp"); };
    document.addEventListener("securitypolicyviolation", onViolation, { once: true });
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      resolve("csp");
      return;
    }
    socket.onopen = () => { socket.close(); resolve("open"); };
    socket.onerror = () => setTimeout(() => resolve("error"), 200);
  });
}

window.kreis = { relayCall, socketCheck };
document.body.dataset.ready = "1";
