#!/usr/bin/env python3
"""Extract the client->server TCP byte stream of one RTMP connection from a pcap.

usage: extract.py CAPTURE.pcap SERVER_PORT OUT.bin [play|publish]

Reads classic libpcap files (tcpdump -w) with Ethernet (lo on Linux) or raw/SLL link types,
IPv4 or IPv6, and reassembles each client->server direction by TCP sequence number (duplicate
and retransmitted segments are dropped). With several connections in the file, the one whose
stream contains an AMF0 "play" (or "publish") command string is written; by default the first.
"""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file (pcapng is not supported)")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        _sec, _usec, incl, _orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += 16
        yield linktype, data[pos:pos + incl]
        pos += incl


def tcp_segments(path):
    for linktype, frame in packets(path):
        if linktype == 1:  # Ethernet
            ethertype = struct.unpack(">H", frame[12:14])[0]
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked (SLL)
            ethertype = struct.unpack(">H", frame[14:16])[0]
            ip = frame[16:]
        elif linktype in (101, 228, 229):  # raw IP
            ip = frame
            ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
        else:
            raise SystemExit(f"unsupported link type {linktype}")
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:total]
            src, dst = ip[12:16], ip[16:20]
        elif ethertype == 0x86DD:
            if ip[6] != 6:
                continue
            plen = struct.unpack(">H", ip[4:6])[0]
            tcp = ip[40:40 + plen]
            src, dst = ip[8:24], ip[24:40]
        else:
            continue
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        flags = tcp[13]
        off = (tcp[12] >> 4) * 4
        yield (src, sport, dst, dport), seq, flags, tcp[off:]


def streams(path, server_port):
    conns = {}
    order = []
    for (src, sport, dst, dport), seq, flags, payload in tcp_segments(path):
        if dport != server_port:
            continue
        key = (src, sport)
        if key not in conns:
            conns[key] = {"isn": None, "segs": {}}
            order.append(key)
        c = conns[key]
        if flags & 0x02:  # SYN: data starts at seq + 1
            c["isn"] = seq + 1
            continue
        if payload:
            c["segs"].setdefault(seq, payload)
    for key in order:
        c = conns[key]
        if c["isn"] is None:
            continue
        out = bytearray()
        expected = c["isn"]
        for seq in sorted(c["segs"], key=lambda s: (s - c["isn"]) & 0xFFFFFFFF):
            payload = c["segs"][seq]
            rel = (seq - expected) & 0xFFFFFFFF
            if rel >= 0x80000000:  # starts before what we have: keep only the new tail
                skip = (expected - seq) & 0xFFFFFFFF
                payload = payload[skip:]
                rel = 0
            if rel != 0:
                raise SystemExit(f"gap of {rel} bytes in connection from port {key[1]}")
            out += payload
            expected = (expected + len(payload)) & 0xFFFFFFFF
        yield key[1], bytes(out)


def main():
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    path, port, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    want = sys.argv[4] if len(sys.argv) == 5 else None
    needle = {"play": b"\x02\x00\x04play", "publish": b"\x02\x00\x07publish", None: b""}[want]
    for client_port, data in streams(path, port):
        if needle in data:
            with open(out_path, "wb") as f:
                f.write(data)
            print(f"{out_path}: {len(data)} bytes from client port {client_port}")
            return
    raise SystemExit("no matching connection")


if __name__ == "__main__":
    main()
