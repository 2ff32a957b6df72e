import Foundation

/// A small NBD client in Python that does what well-behaved clients never do, for the hostile-client
/// and changed-image tests. `python3 client.py SOCKET hostile|modify`; prints one line per check.
enum NBDRawClient {
    static func install(in directory: URL) throws {
        try script.write(to: directory.appendingPathComponent("client.py"), atomically: true, encoding: .utf8)
    }

    static let script = #"""
        import os, socket, struct, sys, time

        path, mode = sys.argv[1], sys.argv[2]
        IHAVEOPT = 0x49484156454F5054

        def connect():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(20)
            s.connect(path)
            return s

        def recvn(s, n):
            b = b''
            while len(b) < n:
                c = s.recv(n - len(b))
                if not c:
                    raise EOFError('server closed')
                b += c
            return b

        def option(s, code, data=b''):
            s.sendall(struct.pack('>QII', IHAVEOPT, code, len(data)) + data)

        def option_reply(s):
            magic, opt, typ, length = struct.unpack('>QIII', recvn(s, 20))
            assert magic == 0x3e889045565a9
            return opt, typ, recvn(s, length)

        def greet(s):
            assert recvn(s, 18)[:16] == b'NBDMAGICIHAVEOPT'
            s.sendall(struct.pack('>I', 3))

        def go(s):
            option(s, 7, struct.pack('>IH', 0, 0))
            while True:
                opt, typ, payload = option_reply(s)
                if typ == 1:
                    return
                assert typ == 3, hex(typ)

        def handshake(structured=True):
            s = connect()
            greet(s)
            if structured:
                option(s, 8)
                assert option_reply(s)[1] == 1
            go(s)
            return s

        def request(s, typ, cookie, offset, length, flags=0, payload=b''):
            s.sendall(struct.pack('>IHHQQI', 0x25609513, flags, typ, cookie, offset, length) + payload)

        def structured_reply(s):
            """(error, {offset: bytes}) of one structured reply, all chunks to DONE."""
            error, data = 0, {}
            while True:
                magic, flags, typ, cookie, length = struct.unpack('>IHHQI', recvn(s, 20))
                assert magic == 0x668e33ef, hex(magic)
                payload = recvn(s, length)
                if typ & 0x8000:
                    error = struct.unpack('>I', payload[:4])[0]
                elif typ == 1:
                    data[struct.unpack('>Q', payload[:8])[0]] = payload[8:]
                elif typ == 2:
                    offset, size = struct.unpack('>QI', payload)
                    data[offset] = bytes(size)
                if flags & 1:
                    return error, data

        def hostile():
            # Abrupt disconnects: at once, after the greeting, in the middle of the client flags.
            connect().close()
            s = connect(); recvn(s, 18); s.close()
            s = connect(); recvn(s, 18); s.sendall(b'\x00\x00'); s.close()
            # Garbage instead of an option: the server closes.
            s = connect(); greet(s); s.sendall(b'\xff' * 64)
            try:
                print('garbage answered' if s.recv(100) == b'' else 'garbage not closed')
            except ConnectionResetError:
                print('garbage answered')
            s.close()
            # An oversized option is skipped and refused; negotiation goes on.
            s = connect(); greet(s)
            option(s, 6, b'\x00' * 70000)
            if option_reply(s)[1] == 0x80000009:
                print('oversized option too big')
            option(s, 8); option_reply(s)
            go(s)
            request(s, 0, 1, 4 << 20, 512); print('past end error %d' % structured_reply(s)[0])
            request(s, 77, 2, 0, 512); print('unknown command error %d' % structured_reply(s)[0])
            request(s, 1, 3, 0, 4, payload=b'evil'); print('write error %d' % structured_reply(s)[0])
            request(s, 0, 4, 0, 64 << 20); print('huge read error %d' % structured_reply(s)[0])
            request(s, 7, 5, 0, 4096); print('block status without context error %d' % structured_reply(s)[0])
            request(s, 0, 6, 0, 8192)
            error, data = structured_reply(s)
            print('structured read ok' if error == 0 and data[0][:4] == b'data' else 'structured read bad')
            # Half a request, then gone.
            s.sendall(struct.pack('>IHH', 0x25609513, 0, 0)); s.close()
            # Simple replies (no structured reply negotiated).
            s = handshake(structured=False)
            request(s, 0, 7, 0, 4096)
            magic, error, cookie = struct.unpack('>IIQ', recvn(s, 16))
            body = recvn(s, 4096)
            print('simple read ok' if magic == 0x67446698 and error == 0 and cookie == 7 and body[:4] == b'data' else 'simple read bad')
            request(s, 2, 8, 0, 0); s.close()

        def modify():
            s = handshake()
            request(s, 0, 1, 0, 4096)
            error, data = structured_reply(s)
            print('first read ok' if error == 0 and data[0][:4] == b'AAAA' else 'first read bad %d' % error)
            with open('disk.raw', 'r+b') as f:
                f.write(b'BBBB')
            later = time.time() + 5
            os.utime('disk.raw', (later, later))
            request(s, 0, 2, 0, 4096)
            error, data = structured_reply(s)
            print('second read error %d' % error)
            s.close()

        hostile() if mode == 'hostile' else modify()
        """#
}
