#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/) from the spec's samples and
vectors (tencent-live-api.md §2 and §4.4, seed/del_room_metadata.txt). Run from anywhere;
re-running rewrites the same files. Each target's first byte picks a mode (see its source)."""
import json, os, zlib

HERE = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# --- usersig: §4.4 vectors A-D (mode 0: the text as sent) -------------------------------------
vectors = {
    "a_python": "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__",
    "a_node": "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__",
    "a_go": "eAEBrABT-3siVExTLnZlciI6IjIuMCIsIlRMUy5pZGVudGlmaWVyIjoieGlhb2p1biIsIlRMUy5zZGthcHBpZCI6MTQwMDAwMDAwMCwiVExTLmV4cGlyZSI6MTU1NTIwMDAsIlRMUy50aW1lIjoxNzAwMDAwMDAwLCJUTFMuc2lnIjoiTHZBN2QvSXc3Z1NzbnNrdlZ6QkRQT0NDRGJ1TkN3NEdId1RDMGJpcCtCND0ifQrfwzH8",
    "b_python": "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPWlxalFSaVpIFsiw72y4FZkpoOEArNCjAwMKwKyI7L1E30NU7UrDcoSs6OSDLyNMgOK3EpTtbUNik0rzZLcfG2VagHdkjl6",
    "b_go": "eAEBwQA*-3siVExTLnZlciI6IjIuMCIsIlRMUy5pZGVudGlmaWVyIjoieGlhb2p1biIsIlRMUy5zZGthcHBpZCI6MTQwMDAwMDAwMCwiVExTLmV4cGlyZSI6MTU1NTIwMDAsIlRMUy50aW1lIjoxNzAwMDAwMDAwLCJUTFMudXNlcmJ1ZiI6IllXSmoiLCJUTFMuc2lnIjoiUWpUMjAxeFBrWGsvYU0xZSt5MHZha1piMEsyaVByRnVlKyswczV5NmJGTT0ifQontTfk",
    "c_python": "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkjGHCxSnZiQUFmSlAQUOoUGpFQWZRKlDABCpQkpkL4hqaG0ABTG9mOsisNNP04DKnyJTwoNTccFPvwKCsirKQqvBM-xyvcjfX0sog81BXVxPXrACzfFulWgD*1S4h",
    "d_python": "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-NgUsUp2YkFBZkpQAlDEwMogMqlVhRkFqUCZSzMTOCCJZm5ICFDczTFxZnpIMNNckIrCt30nbQDg-XdMqpCjS0sfMPLTcyLjdw9vdMLQpzdDMNzw330c0wjbZVqAeD3MM0_",
}
for name, sig in vectors.items():
    write("usersig", "text_" + name, b"\x00" + sig.encode())

def tencent_b64_decode(s):
    import base64
    return base64.b64decode(s.replace("*", "+").replace("-", "/").replace("_", "="))

# mode 1: the JSON inside each vector, with a zlib level byte; mode 2: the raw zlib bytes.
for i, (name, sig) in enumerate(vectors.items()):
    raw = tencent_b64_decode(sig)
    write("usersig", "json_" + name, b"\x01" + bytes([i % 10]) + zlib.decompress(raw))
    write("usersig", "zlib_" + name, b"\x02" + raw)
# mode 3: generate + tamper (identifier length, identifier, expire LE u32, position LE u16, char).
write("usersig", "tamper_admin", b"\x03" + bytes([13]) + b"administrator" + (86400).to_bytes(4, "little") + (10).to_bytes(2, "little") + b"\x07")
write("usersig", "tamper_xiaojun", b"\x03" + bytes([7]) + b"xiaojun" + (15552000).to_bytes(4, "little") + (200).to_bytes(2, "little") + b"\x30")

# --- rest_query: the seed document's sample URL, and every command's path ----------------------
sample = "/v4/live_engine_http_srv/del_room_metadata?sdkappid=88888888&identifier=admin&usersig=xxx&random=99999999&contenttype=json"
write("rest_query", "seed_sample", sample)
for command in ["create_room", "destroy_room", "update_room_info", "get_room_info", "get_room_list",
                "get_room_metadata", "set_room_metadata", "get_member_list"]:
    write("rest_query", "path_" + command,
          f"/v4/live_engine_http_srv/{command}?sdkappid=1400000000&identifier=administrator&usersig={vectors['d_python']}&random=4294967295&contenttype=json")
write("rest_query", "repeated", sample + "&sdkappid=88888888")
write("rest_query", "percent", "/v4/live_engine_http_srv/get_room_info?sdkappid=%31%34&identifier=a%00b&usersig=x%2Ay+z&random=%ZZ")
write("rest_query", "mic", "/v4/room_engine_http_mic/get_seat_list?sdkappid=1")

# --- body: every request sample of §2.1-§2.2 and the seed document ------------------------------
bodies = {
    "create_doc": {"RoomInfo": {"RoomId": "live-room", "RoomType": "Live", "RoomName": "live name", "Owner_Account": "administrator",
                   "CoverURL": "cover url", "IsMessageDisabled": True, "Category": [1, 2, 3], "IsPublicVisible": True, "IsSeatEnabled": True,
                   "TakeSeatMode": "ApplyToTake", "MaxSeatCount": 8, "ActivityStatus": 1, "IsUnlimitedRoomEnabled": True, "SeatLayoutTemplateId": 600}},
    "create_console": {"RoomInfo": {"RoomId": "live_anchor1", "RoomType": "Live", "SeatTemplate": "VideoDynamicGrid9Seats", "Owner_Account": "anchor1",
                       "IsUnlimitedRoomEnabled": True, "TakeSeatMode": "ApplyToTake", "RoomName": "title", "CoverURL": "https://example.invalid/c.png"}},
    "destroy": {"RoomId": "live-room"},
    "update_doc": {"RoomInfo": {"RoomId": "live-room", "RoomName": "rname-123", "MaxMemberCount": 300, "IsMessageDisabled": False,
                   "CoverURL": "https://xxxx.png", "Category": [1, 2, 3], "ActivityStatus": 1, "IsPublicVisible": False, "TakeSeatMode": "ApplyToTake"}},
    "list_first": {"Next": "", "Count": 20},
    "list_next": {"Next": "1700000000-7-6c6976652d726f6f6d", "Count": 3},
    "get_metadata": {"RoomId": "live-room", "Keys": ["key1", "key2"]},
    "set_metadata": {"RoomId": "live-room", "Metadata": [{"Key": "key1", "Value": "value1"}, {"Key": "key2", "Value": "value2"}]},
    # §2.3-§2.6: a room's people.
    "mute": {"RoomId": "test", "MemberList_Account": ["user1", "user2"], "MuteTime": 3600},
    "muted_list_console": {"RoomId": "test", "Next": "", "Count": 100, "Offset": 0, "Limit": 100},
    "ban": {"RoomId": "test", "MemberList_Account": ["user1", "user2"], "Reason": "", "Duration": 3600},
    "banned_list": {"RoomId": "test", "Offset": 0, "Limit": 10},
    "modify_admin": {"RoomId": "test", "Admin_Account": ["user1"], "OpType": "add"},
    "robots": {"RoomId": "mix1", "RobotList_Account": ["brennanli"]},
}
for name, body in bodies.items():
    write("body", name, json.dumps(body, separators=(",", ":")))
write("body", "seed_del_metadata", '{\n"RoomId": "live-room",\n"Keys": ["key1", "key2"]\n}')
write("body", "duplicate_keys", '{"RoomId":"a","RoomId":"live-room","Keys":["k"]}')

# --- cursor (mode 0: decode text; mode 1: 16 bytes of numbers then a RoomId) --------------------
write("cursor", "doc_sample", b"\x00" + b"1693271355-123123123123")
write("cursor", "valid", b"\x00" + b"1700000000-7-6c6976652d726f6f6d")
write("cursor", "upper_hex", b"\x00" + b"1700000000-7-6C6976652D726F6F6D")
write("cursor", "position", b"\x01" + (7).to_bytes(8, "little") + (1700000000).to_bytes(8, "little") + b"live-room")

# --- realtime_frame: client frames of docs/protocol.md, as text --------------------------------
for name, frame in {
    "hello": {"id": 1, "op": "hello", "d": {"v": 1, "sdkappid": 1400000000, "userid": "alice", "usersig": "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIk"}},
    "enter_since": {"id": 2, "op": "enter", "d": {"room": "live-room", "since": {"epoch": 1700000000000, "rev": 41}}},
    "watch": {"id": 3, "op": "watch", "d": {"room": "live-room"}},
    "set_metadata": {"id": 4, "op": "set_metadata", "d": {"room": "live-room", "metadata": {"k": "v"}}},
    "del_metadata": {"id": 5, "op": "del_metadata", "d": {"room": "live-room", "keys": ["k"]}},
    "ping": {"op": "ping"},
}.items():
    write("realtime_frame", name, json.dumps(frame, ensure_ascii=False))
write("realtime_frame", "not_an_object", "[1,2,3]")
