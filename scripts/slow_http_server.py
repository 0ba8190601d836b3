#!/usr/bin/env python3
"""A static file server like `python3 -m http.server`, but file bodies go out slowly: in small
pieces with a pause after each, so a download takes seconds and a test can stop the server in
the middle of one (tests/http_source.rs). Directory listings are sent the same way.

Usage: slow_http_server.py PORT DIRECTORY [--chunk BYTES] [--delay SECONDS]
"""

import argparse
import functools
import http.server
import time


class SlowHandler(http.server.SimpleHTTPRequestHandler):
    chunk = 4096
    delay = 0.03

    def copyfile(self, source, outputfile):
        while True:
            piece = source.read(self.chunk)
            if not piece:
                return
            outputfile.write(piece)
            outputfile.flush()
            time.sleep(self.delay)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("directory")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes sent at a time")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds slept after each piece")
    args = parser.parse_args()
    SlowHandler.chunk = args.chunk
    SlowHandler.delay = args.delay
    handler = functools.partial(SlowHandler, directory=args.directory)
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as server:
        # The line python3 -m http.server prints: the tests wait for it, not for the port.
        print(f"Serving HTTP on {args.bind} port {server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
