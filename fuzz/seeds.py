#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpus (fuzz/corpus/<target>/seed-*): the client
frames of docs/protocol.md and the request bodies of tests/api, plus a few edges. The files
libFuzzer adds beside them (named by their SHA-1) are kept as they come. Usage:
python3 fuzz/seeds.py"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"

FRAMES = {
    # docs/protocol.md, as written there
    "ping": '{"type":"ping"}',
    "ping-id": '{"type":"ping","id":"p-1"}',
    "presence-set": '{"type":"presence.set","status":"busy"}',
    "call-invite": '{"type":"call.invite","id":1,"to":3,"media":"video"}',
    "call-invite-room": '{"type":"call.invite","id":1,"to":3,"media":"chat","room":"dm:3:7"}',
    "call-accept": '{"type":"call.accept","call_id":"c-1a2b3c4d5e6f708112345678"}',
    "call-decline": '{"type":"call.decline","call_id":"c-1"}',
    "call-cancel": '{"type":"call.cancel","call_id":"c-1"}',
    "call-hangup": '{"type":"call.hangup","call_id":"c-1"}',
    "room-join": '{"type":"room.join","id":2,"room":"canal1","since":41}',
    "room-join-dm": '{"type":"room.join","room":"dm:3:7"}',
    "room-join-call": '{"type":"room.join","room":"call:c-12ab"}',
    "room-leave": '{"type":"room.leave","room":"canal1"}',
    "chat-send": '{"type":"chat.send","id":3,"room":"canal1","client_msg_id":"m-5f1","text":"olá"}',
    "chat-typing": '{"type":"chat.typing","room":"canal1"}',
    "chat-history": '{"type":"chat.history","id":4,"room":"canal1","before":42,"limit":50}',
    # signals: type first (the one-pass path) and type last (the general path)
    "signal-offer": json.dumps({"type": "signal", "room": "call:c-1", "to": "s-2", "kind": "offer",
                                "data": {"type": "offer", "sdp": SDP}}, separators=(",", ":")),
    "signal-candidate": '{"type":"signal","id":"a","room":"call:c-1","to":"s-2","kind":"candidate","data":{"candidate":"candidate:1 1 udp 2 10.0.0.1 5000 typ host","seq":7}}',
    "signal-type-last": '{"id":"a","room":"call:c-1","to":"s-2","kind":"answer","data":{"sdp":"x"},"type":"signal"}',
    # what the unit tests refuse
    "bad-duplicate-type": '{"type":"signal","id":3,"type":"ping"}',
    "bad-trailing": '{"type":"signal","id":3,"room":"r","to":"s-2","kind":"offer"}}',
    "bad-unknown": '{"type":"nope","id":"a"}',
    "bad-missing": '{"type":"chat.send","id":1,"room":"x"}',
    "bad-array": "[1,2]",
    "bad-empty-object": "{}",
    "bad-room": '{"type":"room.join","room":"dm:7:3"}',
    "bad-escapes": '{"type":"chat.send","room":"a","client_msg_id":"\\ud83d\\ude00","text":"\\u0000\\n\\"x"}',
    "bad-deep": '{"type":"ping","id":' + "[" * 200 + "]" * 200 + "}",
}

BODIES = {
    "register": '{"nickname":"ana","password":"correct horse battery","themes":["Jogos","Futebol"],"capabilities":["video","audio","text"]}',
    "register-short": '{"nickname":"ab","password":"correct horse battery"}',
    "register-space": '{"nickname":"a b c","password":"correct horse battery"}',
    "register-same": '{"nickname":"carla1234","password":"CARLA1234"}',
    "register-no-caps": '{"nickname":"carla","password":"correct horse battery","capabilities":[]}',
    "register-bad-cap": '{"nickname":"carla","password":"correct horse battery","capabilities":["telepathy"]}',
    "register-unknown-field": '{"nickname":"carla","password":"correct horse battery","admin":true}',
    "login": '{"nickname":" bRUNO ","password":"correct horse battery"}',
    "login-themes": '{"nickname":"kaka","password":"correct horse battery","themes":["Jogos"]}',
    "me-themes": '{"themes":["Futebol","Basquete"],"capabilities":["text"]}',
    "me-password": '{"current_password":"correct horse battery","new_password":"another good one"}',
    "me-new-only": '{"new_password":"another good one"}',
    "role-admin": '{"role":"admin"}',
    "role-user": '{"role":"user"}',
    "theme-create": '{"name":" Xadrez ","description":"Aberturas e finais"}',
    "theme-blank": '{"name":"  "}',
    "theme-control": '{"name":"a\\u0007b"}',
    "theme-update": '{"description":"Openings"}',
    "empty-object": "{}",
    "null": "null",
}


def write(target, seeds):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, text in seeds.items():
        with open(os.path.join(folder, "seed-" + name), "w", encoding="utf-8") as f:
            f.write(text)


write("ws_frame", FRAMES)
write("json_bodies", BODIES)
