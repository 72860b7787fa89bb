"""
cdp - drive a headless Chromium through the DevTools protocol, with the
Python standard library only (a minimal WebSocket client).

    with Browser() as b:
        b.open('http://127.0.0.1:8000/create/')
        b.eval('document.title')
        b.screenshot('page.png')

Chromium is started as a process of ours (own profile directory, debugging
port picked by Chromium and read from its output) and stopped by its pid.
"""

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'


class WebSocket:
    """Text frames only, client side (masked), enough for DevTools."""

    def __init__(self, url, timeout=30):
        m = re.match(r'ws://([^:/]+):(\d+)(/.*)', url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(('GET %s HTTP/1.1\r\nHost: %s:%d\r\n'
                           'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                           'Sec-WebSocket-Key: %s\r\n'
                           'Sec-WebSocket-Version: 13\r\n\r\n'
                           % (path, host, port, key)).encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError('websocket handshake failed')
            head += chunk
        if b' 101 ' not in head.split(b'\r\n')[0]:
            raise ConnectionError('websocket refused: %r' % head[:200])

    def _recv_exact(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError('websocket closed')
            buf += chunk
        return buf

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        n = len(data)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack('!H', n)
        else:
            header += bytes([0x80 | 127]) + struct.pack('!Q', n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b''
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack('!H', self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack('!Q', self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            opcode = b0 & 0x0f
            if opcode == 0x8:
                raise ConnectionError('websocket closed by the browser')
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        self.sock.close()


class Browser:
    def __init__(self, width=1100, height=900):
        self.profile = tempfile.mkdtemp(prefix='pgp-chromium-')
        self.proc = subprocess.Popen(
            [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
             '--no-first-run', '--disable-extensions',
             '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1',
             '--user-data-dir=' + self.profile,
             '--window-size=%d,%d' % (width, height), 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.port = self._read_port()
        self.ws = WebSocket(self._page_ws_url())
        self.next_id = 0

    def _read_port(self, timeout=60):
        end = time.monotonic() + timeout
        port_file = os.path.join(self.profile, 'DevToolsActivePort')
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError('chromium exited: %s'
                                   % self.proc.stderr.read())
            try:
                with open(port_file) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise RuntimeError('chromium did not open its DevTools port')

    def _page_ws_url(self):
        for _ in range(100):
            with urllib.request.urlopen('http://127.0.0.1:%d/json/list'
                                        % self.port, timeout=10) as r:
                pages = [t for t in json.load(r) if t['type'] == 'page']
            if pages:
                return pages[0]['webSocketDebuggerUrl']
            time.sleep(0.1)
        raise RuntimeError('no page in chromium')

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({'id': my_id, 'method': method,
                                 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == my_id:
                if 'error' in msg:
                    raise RuntimeError('%s: %s' % (method, msg['error']))
                return msg['result']

    def open(self, url):
        self.call('Page.enable')
        self.call('Page.navigate', url=url)
        self.wait_for('document.readyState === "complete"')

    def eval(self, expression):
        r = self.call('Runtime.evaluate', expression=expression,
                      returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            raise RuntimeError('JS error: %r' % r['exceptionDetails'])
        return r['result'].get('value')

    def wait_for(self, expression, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.eval(expression):
                return
            time.sleep(0.2)
        raise AssertionError('timed out waiting for %s' % expression)

    def screenshot(self, path):
        data = self.call('Page.captureScreenshot', format='png')['data']
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
