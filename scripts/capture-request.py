# Records one raw HTTP request byte for byte and answers it with a canned
# DynamoDB JSON body. Usage: capture.py PORT OUTFILE [RESPONSE_JSON]
import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
resp = (sys.argv[3] if len(sys.argv) > 3 else '{}').encode()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(1)
c, _ = srv.accept()
buf = b""
while b"\r\n\r\n" not in buf:
    buf += c.recv(65536)
head, body = buf.split(b"\r\n\r\n", 1)
n = 0
for line in head.split(b"\r\n")[1:]:
    k, v = line.split(b":", 1)
    if k.strip().lower() == b"content-length": n = int(v)
while len(body) < n:
    body += c.recv(65536)
open(out, "wb").write(head + b"\r\n\r\n" + body)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(resp) + resp)
c.close()
