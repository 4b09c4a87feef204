#!/usr/bin/python3
"""A foreign gRPC implementation talks to an mlxd node: Python grpcio (Debian's python3-grpcio) with stubs that
grpc_tools.protoc generates here from proto/mlxd/v1/comm.proto. It shakes hands, sends tensors of every dtype
(one far above gRPC's 4 MB message limit, in chunks) through Echo and checks that they come back intact; a call
without the token gets UNAUTHENTICATED and one with another major version FAILED_PRECONDITION.

Usage: foreign_client.py COMM_WORKER PROTO_ROOT
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

import grpc
from grpc_tools import protoc

TOKEN = "foreign-" + str(random.randrange(10**9))
CHUNK = 1 << 20


def main():
    worker, proto_root = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="mlxd-py-")
    rc = protoc.main(["protoc", "-I" + proto_root, "--python_out=" + out, "--grpc_python_out=" + out,
                      os.path.join(proto_root, "mlxd/v1/comm.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, out)
    from mlxd.v1 import comm_pb2, comm_pb2_grpc

    server = subprocess.Popen([worker, "echo", TOKEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        channel = grpc.insecure_channel("127.0.0.1:%d" % port, options=[
            ("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)])
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = comm_pb2_grpc.CommStub(channel)
        good = [("mlxd-protocol", "1.0"), ("authorization", "Bearer " + TOKEN)]

        reply = stub.Hello(comm_pb2.HelloRequest(protocol_major=1, protocol_minor=0, node_id="python", rank=-1),
                           metadata=good, timeout=10)
        assert reply.protocol_major == 1 and reply.rank == 0, reply

        for metadata, code in [([("mlxd-protocol", "1.0")], grpc.StatusCode.UNAUTHENTICATED),
                               ([("mlxd-protocol", "1.0"), ("authorization", "Bearer nope")],
                                grpc.StatusCode.UNAUTHENTICATED),
                               ([("mlxd-protocol", "2.0"), ("authorization", "Bearer " + TOKEN)],
                                grpc.StatusCode.FAILED_PRECONDITION)]:
            try:
                stub.Hello(comm_pb2.HelloRequest(protocol_major=1), metadata=metadata, timeout=10)
                raise AssertionError("call with %s was accepted" % metadata)
            except grpc.RpcError as e:
                assert e.code() == code, (metadata, e.code(), e.details())

        rng = random.Random(7)
        cases = [
            (comm_pb2.DTYPE_F32, [3, 4], struct.pack("<12f", *[rng.uniform(-1, 1) for _ in range(12)])),
            (comm_pb2.DTYPE_F16, [5], bytes(rng.randrange(256) for _ in range(10))),
            (comm_pb2.DTYPE_BF16, [2, 2, 2], bytes(rng.randrange(256) for _ in range(16))),
            (comm_pb2.DTYPE_I32, [7], struct.pack("<7i", *[rng.randrange(-2**31, 2**31) for _ in range(7)])),
            (comm_pb2.DTYPE_I64, [1], struct.pack("<q", -2**62)),
            (comm_pb2.DTYPE_U8, [0], b""),
            (comm_pb2.DTYPE_BOOL, [4], bytes([0, 1, 1, 0])),
            (comm_pb2.DTYPE_F32, [], struct.pack("<f", 3.25)),
            (comm_pb2.DTYPE_U8, [3, 1000, 3000], os.urandom(3_000_000) * 3),  # 9 MB in 9 chunks
        ]

        def chunks():
            for dtype, shape, data in cases:
                offset = 0
                while True:
                    piece = data[offset:offset + CHUNK]
                    yield comm_pb2.TensorChunk(dtype=dtype, shape=shape, total_bytes=len(data), offset=offset,
                                               data=piece)
                    offset += len(piece)
                    if offset >= len(data):
                        break

        received = []
        current = None
        for c in stub.Echo(chunks(), metadata=good, timeout=60):
            if c.offset == 0:
                current = [c.dtype, list(c.shape), bytearray()]
            current[2] += c.data
            if len(current[2]) == c.total_bytes:
                received.append((current[0], current[1], bytes(current[2])))
        assert len(received) == len(cases), (len(received), len(cases))
        for (dtype, shape, data), (rdtype, rshape, rdata) in zip(cases, received):
            assert (dtype, list(shape)) == (rdtype, rshape), ((dtype, shape), (rdtype, rshape))
            assert data == rdata, "tensor %s %s changed on the way" % (dtype, shape)

        try:  # a lying chunk is refused
            list(stub.Echo(iter([comm_pb2.TensorChunk(dtype=comm_pb2.DTYPE_F32, shape=[3], total_bytes=8,
                                                      data=b"12345678")]), metadata=good, timeout=10))
            raise AssertionError("a malformed chunk was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code()
        print("foreign client: %d tensors round-tripped intact, refusals as expected" % len(cases))
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
