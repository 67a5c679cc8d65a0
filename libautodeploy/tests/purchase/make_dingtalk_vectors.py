#!/usr/bin/env python3
"""make_dingtalk_vectors.py - the vectors of test_dingtalk_crypto.c, made by an
implementation independent of the library: Python's hashlib (SHA-1) and the
`cryptography` package (AES-256-CBC), following DingTalk's DingCallbackCrypto
(github.com/open-dingtalk/DingTalk-Callback-Crypto). Deterministic: the keys,
random prefixes, timestamps and nonces are fixed here.

    .deps/venv3008/bin/python libautodeploy/tests/purchase/make_dingtalk_vectors.py

prints C initialisers; paste them into test_dingtalk_crypto.c.
"""
import base64
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TOKEN = "tok-autodeploy-7"
# 32 fixed bytes -> base64 is 44 characters ending in "=": the 43 before it
# are the EncodingAESKey, as DingTalk's console shows one
AES_KEY = base64.b64encode(bytes(range(7, 7 + 64, 2))).decode()[:43]
OWNER = "dingappkey123"


def key():
    return base64.b64decode(AES_KEY + "=")


def aes(raw):
    k = key()
    e = Cipher(algorithms.AES(k), modes.CBC(k[:16])).encryptor()
    return e.update(raw) + e.finalize()


def frame(random16, msg, owner=OWNER, length=None):
    body = random16 + struct.pack(">I", len(msg) if length is None else length) + msg + owner.encode()
    pad = 32 - len(body) % 32
    return body + bytes([pad]) * pad


def sign(ts, nonce, enc, token=TOKEN):
    return hashlib.sha1("".join(sorted([token, ts, nonce, enc])).encode()).hexdigest()


def vector(name, ts, nonce, raw):
    enc = base64.b64encode(aes(raw)).decode()
    print(f'/* {name} */\nstatic const vec_t {name} = {{"{ts}", "{nonce}",\n  "{enc}",\n  "{sign(ts, nonce, enc)}"}};')


def cstr(b):
    """C string text: quotes escaped, other bytes as octal (never runs on like \\x)."""
    return "".join("\\" + c if c in '"\\' else c if 32 <= ord(c) < 127 else "\\%03o" % ord(c)
                   for c in b.decode("latin-1"))


print(f'#define TOKEN "{TOKEN}"\n#define AES_KEY "{AES_KEY}"\n#define OWNER "{OWNER}"')
EVENT = ('{"EventType":"bpms_instance_change","processInstanceId":"inst-1","processCode":'
         '"PROC-AUTODEPLOY","type":"finish","result":"agree","staffId":"sre-1",'
         '"title":"采购审批"}').encode()
print(f'#define EVENT "{cstr(EVENT)}"')
vector("FINISH", "1700000000123", "nonce-42", frame(b"0123456789abcdef", EVENT))
# a message whose frame is a whole number of 32-byte blocks: a full block of padding
msg = b"x" * (64 - 20 - len(OWNER))
assert (20 + len(msg) + len(OWNER)) % 32 == 0
print(f'#define WHOLE "{cstr(msg)}"')
vector("WHOLE_BLOCK", "1700000000124", "n2", frame(b"ABCDEFGHIJKLMNOP", msg))
vector("OTHER_OWNER", "1700000000125", "n3", frame(b"0123456789abcdef", EVENT, owner="other-app"))
good = frame(b"0123456789abcdef", EVENT)
vector("BAD_PAD_VALUE", "1700000000126", "n4", good[:-1] + b"\x21")    # last byte 33 > 32
vector("BAD_PAD_BYTES", "1700000000127", "n5", good[:-2] + b"\x00" + good[-1:])  # a hole in it
vector("BAD_LENGTH", "1700000000128", "n6", frame(b"0123456789abcdef", EVENT, length=0x7FFFFFFF))
short = base64.b64encode(aes(good)[:40]).decode()  # 40 bytes: not whole AES blocks
print(f'/* NOT_BLOCKS */\nstatic const vec_t NOT_BLOCKS = {{"1700000000129", "n7",\n  "{short}",\n  "{sign("1700000000129", "n7", short)}"}};')
# the answer DingTalk expects: "success", sealed and signed as getEncryptedMap does
vector("SUCCESS", "1700000000999", "NONCEnonce123456", frame(b"RANDOMrandom1234", b"success"))
