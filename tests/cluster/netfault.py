"""
netfault - a fault-injecting TCP proxy between the nodes of a Cluster.

Every ordered pair of distinct nodes (src -> dst) gets a link of its own: a
proxy listener on 127.0.0.1 that forwards to dst's port.  Links can be cut
and healed one by one, so a node can be cut off from some peers and not
others, in one direction or both.  A node reaches itself directly.

One connection string per member, yet a route per pair: the membership
holds `service=pgp_<node> ...` for every node, and each server resolves
service names through its own libpq service file (PGSERVICEFILE, set in
the server's environment), which points every other node's name at the
link from this node to that one.  Clients and tests keep connecting to the
nodes directly (Node.connstr): only node-to-node traffic crosses the links.

A cut link is a black hole, as a real partition is: nothing is forwarded
either way and nothing is closed.  Bytes sent stay in socket buffers, TCP
flow control stops the sender, a new connection is accepted but never
reaches its destination, so peers see timeouts, not refused connections.
Healing resumes everything: what was sent during the cut arrives late
(as TCP retransmission would deliver it), and parked connections are
carried on to their destination.

The proxy runs in a process of its own (multiprocessing, fork), driven
over a pipe: it takes no GIL from the test, and sockets it opens are never
inherited by the test's worker processes (closing them would then not
close the connection).

    cluster = pgcluster.Cluster(3, settings)
    net = netfault.Network(cluster)       # before cluster.start()
    cluster.start(); net.start()          # before the group is formed
    cluster.form_group('g')
    net.isolate(cluster[0]); ...; net.heal_all()
    net.close()
"""

import errno
import multiprocessing
import os
import selectors
import shutil
import socket

import pgcluster

BUFFER_LIMIT = 1 << 20      # bytes queued one way before reading pauses


# ---------------------------------------------------------------------------
# The proxy process
# ---------------------------------------------------------------------------

class _Pipe:
    """One proxied connection: the side that connected to the link (a) and
    the side connected to the destination (b, None while parked)."""

    def __init__(self, link, a):
        self.link = link
        self.a = a
        self.b = None
        self.connecting = False
        self.to_b = bytearray()
        self.to_a = bytearray()


class _Link:
    def __init__(self, key, dst_port):
        self.key = key
        self.dst_port = dst_port
        self.up = True
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.forwarded = 0          # bytes, both ways


class _Proxy:
    """The event loop of the proxy process."""

    def __init__(self, control, routes):
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.links = {key: _Link(key, port) for key, port in routes.items()}
        self.pipes = set()
        self.watched = {}           # socket -> events it is registered for
        self.sel.register(control, selectors.EVENT_READ, ('control', None))
        for link in self.links.values():
            self.sel.register(link.listener, selectors.EVENT_READ,
                              ('accept', link))

    def run(self):
        self.control.send({k: l.port for k, l in self.links.items()})
        while True:
            self._update_interest()
            for key, events in self.sel.select():
                kind, obj = key.data
                if kind == 'control':
                    if not self._command():
                        return
                elif kind == 'accept':
                    self._accept(obj)
                else:
                    self._io(obj, key.fileobj, events)

    def _command(self):
        try:
            cmd, arg = self.control.recv()
        except EOFError:
            return False
        if cmd == 'stop':
            return False
        if cmd in ('cut', 'heal'):
            for key in arg:
                self.links[tuple(key)].up = cmd == 'heal'
            if cmd == 'heal':
                for pipe in list(self.pipes):
                    if pipe.b is None and pipe.link.up:
                        self._connect(pipe)
            self.control.send('ok')
        elif cmd == 'stats':
            self.control.send({k: (l.up, l.accepted, l.forwarded)
                               for k, l in self.links.items()})
        return True

    def _accept(self, link):
        try:
            sock, _ = link.listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.accepted += 1
        pipe = _Pipe(link, sock)
        self.pipes.add(pipe)
        if link.up:
            self._connect(pipe)

    def _connect(self, pipe):
        b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        b.setblocking(False)
        b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = b.connect_ex(('127.0.0.1', pipe.link.dst_port))
        if rc not in (0, errno.EINPROGRESS):
            b.close()
            self._close(pipe)          # destination down: refuse, as it would
            return
        pipe.b = b
        pipe.connecting = rc != 0

    def _update_interest(self):
        """Read while the other way has room, write what is queued; a cut
        link does neither (a parked connection waits for its destination)."""
        for pipe in self.pipes:
            up = pipe.link.up
            ready = pipe.b is not None and not pipe.connecting
            for sock, inbox, outbox in ((pipe.a, pipe.to_b, pipe.to_a),
                                        (pipe.b, pipe.to_a, pipe.to_b)):
                if sock is None:
                    continue
                ev = 0
                if up and sock is pipe.b and pipe.connecting:
                    ev = selectors.EVENT_WRITE
                elif up and ready:
                    if len(inbox) < BUFFER_LIMIT:
                        ev |= selectors.EVENT_READ
                    if outbox:
                        ev |= selectors.EVENT_WRITE
                self._interest(sock, pipe, ev)

    def _interest(self, sock, pipe, ev):
        """Watch sock for ev (nothing at all if ev is 0)."""
        old = self.watched.get(sock, 0)
        if ev == old:
            return
        if ev == 0:
            self.sel.unregister(sock)
            del self.watched[sock]
        elif old == 0:
            self.sel.register(sock, ev, ('io', pipe))
            self.watched[sock] = ev
        else:
            self.sel.modify(sock, ev, ('io', pipe))
            self.watched[sock] = ev

    def _io(self, pipe, sock, events):
        if pipe not in self.pipes:
            return
        if sock is pipe.b and pipe.connecting:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close(pipe)
                return
            pipe.connecting = False
            return
        other = pipe.to_b if sock is pipe.a else pipe.to_a
        mine = pipe.to_a if sock is pipe.a else pipe.to_b
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b''
            if data == b'':
                self._close(pipe)
                return
            if data:
                other.extend(data)
                pipe.link.forwarded += len(data)
        if events & selectors.EVENT_WRITE and mine:
            try:
                sent = sock.send(mine)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(pipe)
                return
            del mine[:sent]

    def _close(self, pipe):
        self.pipes.discard(pipe)
        for sock in (pipe.a, pipe.b):
            if sock is None:
                continue
            self._interest(sock, pipe, 0)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _proxy_main(control, routes):
    _Proxy(control, routes).run()


# ---------------------------------------------------------------------------
# The test's side
# ---------------------------------------------------------------------------

class Network:
    """The links between the nodes of a cluster (see the module doc)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.dir = pgcluster.make_tempdir('pgp-net-')
        self.ports = {}
        self.proc = None
        self.control = None
        for node in cluster:
            node.env['PGSERVICEFILE'] = self._service_file(node)
            node.peer_connstr = ('service=%s dbname=postgres user=postgres'
                                 % self.service_name(node))

    @staticmethod
    def service_name(node):
        return 'pgp_%s' % node.name

    def _service_file(self, node):
        return os.path.join(self.dir, '%s.service.conf' % node.name)

    def start(self):
        """Start the proxy (the nodes must be started: their ports are the
        links' destinations) and write every node's service file."""
        routes = {(s.name, d.name): d.port
                  for s in self.cluster for d in self.cluster if s is not d}
        ctx = multiprocessing.get_context('fork')
        self.control, child = ctx.Pipe()
        self.proc = ctx.Process(target=_proxy_main, args=(child, routes),
                                daemon=True, name='netfault-proxy')
        self.proc.start()
        child.close()
        if not self.control.poll(30):
            raise RuntimeError('the proxy process did not start')
        self.ports = self.control.recv()
        for src in self.cluster:
            lines = []
            for dst in self.cluster:
                port = dst.port if dst is src \
                    else self.ports[(src.name, dst.name)]
                lines.append('[%s]\nhost=127.0.0.1\nport=%d\n'
                             % (self.service_name(dst), port))
            path = self._service_file(src)
            with open(path, 'w') as f:
                f.write('\n'.join(lines))
            os.chmod(path, 0o644)
        return self

    def _call(self, cmd, arg=None):
        self.control.send((cmd, arg))
        if not self.control.poll(30):
            raise RuntimeError('the proxy did not answer %r' % cmd)
        return self.control.recv()

    def _pairs(self, pairs):
        return [(s.name, d.name) for s, d in pairs]

    def cut(self, pairs):
        """Cut the links src -> dst for each (src, dst) node pair: what src
        sends to dst over connections src opened, and their answers."""
        self._call('cut', self._pairs(pairs))

    def heal(self, pairs):
        self._call('heal', self._pairs(pairs))

    def isolate(self, node):
        """Cut node off from every other node, both ways; it still reaches
        itself, and clients still reach it."""
        others = [n for n in self.cluster if n is not node]
        self.cut([(node, o) for o in others] + [(o, node) for o in others])

    def heal_all(self):
        self._call('heal', list(self.ports))

    def stats(self):
        """{(src name, dst name): (up, connections accepted, bytes
        forwarded)}."""
        return self._call('stats')

    def close(self):
        if self.proc is not None:
            try:
                self.control.send(('stop', None))
            except OSError:
                pass
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
            self.control.close()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
