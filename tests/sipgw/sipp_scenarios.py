"""SIPp client scenarios for the gateway tests, built as XML text.

Built in Python rather than kept as static files so a test can put its own digits
into a SIP INFO sequence. Every scenario calls `sip:[service]@gateway` from the
number in `CALLER` and ends its dialog itself (BYE), so SIPp exits on its own.
In-dialog requests go as a real phone sends them: to the answer's Contact, along its
Record-Route set (`rrs`, `[next_url]`, `[routes]`), so they pass a proxy (Kamailio).
"""

from __future__ import annotations

from pathlib import Path

CALLER = "0301234511"

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'

_FROM = f'"Test" <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'

_INVITE = f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {_FROM}
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{CALLER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv

    ]]>
  </send>
"""

_ANSWERED = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
"""


def _request(
    method: str,
    cseq: int,
    extra: str = "",
    body: str = "",
    retrans: bool = True,
    in_dialog: bool = True,
) -> str:
    target = "[next_url]" if in_dialog else "sip:[service]@[remote_ip]:[remote_port]"
    routes = "      [routes]\n" if in_dialog else ""
    ctype = ""
    if body:
        ctype = "      Content-Type: application/dtmf-relay\n"
    attr = ' retrans="500"' if retrans else ""
    return f"""  <send{attr}>
    <![CDATA[
      {method} {target} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {_FROM}
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:{CALLER}@[local_ip]:[local_port]>
      Max-Forwards: 70
{routes}{extra}{ctype}      Content-Length: [len]

{body}
    ]]>
  </send>
"""


def _ack() -> str:
    return _request("ACK", 1, retrans=False)


def _bye(cseq: int) -> str:
    return _request("BYE", cseq) + '  <recv response="200" crlf="true"/>\n'


def info_pin(digits: str, hold_ms: int = 2000) -> str:
    """Answered call; the PIN goes as SIP INFO (application/dtmf-relay), then BYE."""
    parts = [_HEAD, '<scenario name="PIN by SIP INFO">\n', _INVITE, _ANSWERED, _ack()]
    parts.append('  <pause milliseconds="1000"/>\n')
    cseq = 2
    for digit in digits:
        body = f"      Signal={digit}\n      Duration=160\n"
        parts.append(_request("INFO", cseq, body=body))
        parts.append('  <recv response="200"/>\n')
        parts.append('  <pause milliseconds="150"/>\n')
        cseq += 1
    parts.append(f'  <pause milliseconds="{hold_ms}"/>\n')
    parts.append(_bye(cseq))
    parts.append("</scenario>\n")
    return "".join(parts)


def silent_after_pin(digits: str, wait_ms: int = 45000) -> str:
    """Answered call that sends no RTP at all, only its PIN as SIP INFO, then waits for
    the gateway's BYE (a phone that vanished without hanging up)."""
    parts = [_HEAD, '<scenario name="silent caller">\n', _INVITE, _ANSWERED, _ack()]
    parts.append('  <pause milliseconds="1000"/>\n')
    for cseq, digit in enumerate(digits, start=2):
        body = f"      Signal={digit}\n      Duration=160\n"
        parts.append(_request("INFO", cseq, body=body))
        parts.append('  <recv response="200"/>\n')
        parts.append('  <pause milliseconds="150"/>\n')
    parts.append(f'  <recv request="BYE" timeout="{wait_ms}"/>\n')
    parts.append(
        """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""
    )
    parts.append("</scenario>\n")
    return "".join(parts)


def refer() -> str:
    """Answered call, then a REFER that the gateway must refuse (603), then BYE."""
    extra = "      Refer-To: <sip:0800123456@[remote_ip]>\n"
    return "".join(
        [
            _HEAD,
            '<scenario name="REFER is refused">\n',
            _INVITE,
            _ANSWERED,
            _ack(),
            '  <pause milliseconds="500"/>\n',
            _request("REFER", 2, extra=extra),
            '  <recv response="603"/>\n',
            _bye(3),
            "</scenario>\n",
        ]
    )


def rejected(code: int) -> str:
    """An INVITE that must be refused with `code` (then the ACK for the failure)."""
    return "".join(
        [
            _HEAD,
            f'<scenario name="INVITE refused with {code}">\n',
            _INVITE,
            '  <recv response="100" optional="true"/>\n',
            f'  <recv response="{code}"/>\n',
            _request("ACK", 1, retrans=False, in_dialog=False),
            "</scenario>\n",
        ]
    )


def flood_call(hold_ms: int) -> str:
    """One call of an INVITE flood: answered, held `hold_ms`, ended by BYE (a refusal
    is an unexpected message for SIPp: a failed call)."""
    parts = [_HEAD, '<scenario name="flood call">\n', _INVITE, _ANSWERED, _ack()]
    parts.append(f'  <pause milliseconds="{hold_ms}"/>\n')
    parts.append(_bye(2))
    parts.append("</scenario>\n")
    return "".join(parts)


def write(path: Path, xml: str) -> Path:
    path.write_text(xml, encoding="ascii")
    return path
