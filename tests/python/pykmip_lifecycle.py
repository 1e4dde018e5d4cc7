"""PyKMIP 0.11 client driving kmipd (run by tests/tests/pykmip.rs).

Usage: pykmip_lifecycle.py HOST PORT CERT KEY CA MODE VERSION...
MODE "admin": create, get, get_attributes(State), activate, locate, revoke,
destroy. MODE "vcenter": create, get, get_attributes(State), activate.
VERSION: 1.0 1.1 1.2 1.3 1.4 2.0. Prints one JSON line per version; exits
non-zero on the first failure.
"""
import json
import sys

from kmip import enums
from kmip.pie import exceptions
from kmip.pie.client import ProxyKmipClient

VERSIONS = {
    "1.0": enums.KMIPVersion.KMIP_1_0,
    "1.1": enums.KMIPVersion.KMIP_1_1,
    "1.2": enums.KMIPVersion.KMIP_1_2,
    "1.3": enums.KMIPVersion.KMIP_1_3,
    "1.4": enums.KMIPVersion.KMIP_1_4,
    "2.0": enums.KMIPVersion.KMIP_2_0,
}


def state(c, uid):
    got_uid, attrs = c.get_attributes(uid, ["State"])
    assert got_uid == uid, (got_uid, uid)
    assert len(attrs) == 1, attrs
    return attrs[0].attribute_value.value


def run(host, port, cert, key, ca, mode, version):
    c = ProxyKmipClient(
        hostname=host,
        port=port,
        cert=cert,
        key=key,
        ca=ca,
        config_file="/dev/null",
        kmip_version=VERSIONS[version],
    )
    out = {"version": version, "mode": mode}
    with c:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256)
        out["id"] = uid
        k = c.get(uid)
        assert len(k.value) == 32, len(k.value)
        assert k.cryptographic_algorithm == enums.CryptographicAlgorithm.AES
        out["key_sha_prefix"] = k.value[:4].hex()
        assert state(c, uid) == enums.State.PRE_ACTIVE
        c.activate(uid)
        assert state(c, uid) == enums.State.ACTIVE
        again = c.get(uid)
        assert again.value == k.value
        if mode == "admin":
            found = c.locate()
            assert uid in found, (uid, found)
            found = c.locate(
                attributes=[
                    c.attribute_factory.create_attribute(
                        enums.AttributeType.STATE, enums.State.ACTIVE
                    )
                ]
            )
            assert uid in found, (uid, found)
            c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
            assert state(c, uid) == enums.State.DEACTIVATED
            c.destroy(uid)
            assert state(c, uid) == enums.State.DESTROYED
            try:
                c.get(uid)
                raise AssertionError("Get of a destroyed key succeeded")
            except exceptions.KmipOperationFailure as e:
                out["get_destroyed"] = str(e.reason)
    out["ok"] = True
    return out


def main():
    host, port, cert, key, ca, mode = sys.argv[1:7]
    for v in sys.argv[7:]:
        print(json.dumps(run(host, int(port), cert, key, ca, mode, v)), flush=True)


if __name__ == "__main__":
    main()
