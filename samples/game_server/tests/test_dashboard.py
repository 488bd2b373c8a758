"""The dashboard in headless Chromium against a running server with bots:
the page polls /stats.json and its charts show live data (samples keep
arriving, frame numbers advance, the canvases have drawn lines, players > 0).
Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe)
and keeps a screenshot (dashboard.png beside the test's build output, or the
path in GAME_SERVER_SCREENSHOT)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1024,640"]


class DevTools:
    """The DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, exe, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # The child's fd 3 reads commands, fd 4 writes replies (dup2 in the
        # child; close_fds=False, else subprocess closes them after preexec_fn).

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen([exe] + FLAGS + ["--user-data-dir=" + profile,
                                                      "--remote-debugging-pipe", "about:blank"],
                                     preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.buf = b""

    def call(self, method, session=None, timeout=20, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buf:
                if time.monotonic() > deadline:
                    raise TimeoutError("no answer to " + method)
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply["result"]

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)


PROBE = """(() => {
  const st = document.getElementById('status');
  const inked = id => {
    const c = document.getElementById(id), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  };
  return JSON.stringify({samples: +st.dataset.samples, frame: +(st.dataset.frame || 0),
    players: +(st.dataset.players || 0), msgsOut: +(st.dataset.msgsOut || 0), text: st.textContent,
    ink: ['chart-tick', 'chart-msgs', 'chart-players', 'chart-rss'].map(inked)});
})()"""


def probe(dt, session):
    r = dt.call("Runtime.evaluate", session, expression=PROBE, returnByValue=True)
    return json.loads(r["result"]["value"])


def main():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("SKIP: chromium is not installed (tools/dev test installs Debian's chromium)")
        return 77                    # ctest: SKIP_RETURN_CODE
    bin_dir = harness.bin_dir_from_argv()
    shot = os.environ.get("GAME_SERVER_SCREENSHOT") or os.path.join(bin_dir, "..", "dashboard.png")
    with tempfile.TemporaryDirectory() as tmp:
        with harness.Server(bin_dir, os.path.join(tmp, "game.db")) as srv:
            bots = threading.Thread(target=harness.run_bots, args=(bin_dir, srv.port),
                                    kwargs={"bots": 40, "seconds": 8}, daemon=True)
            bots.start()
            dt = DevTools(exe, os.path.join(tmp, "profile"))
            try:
                target = dt.call("Target.createTarget", url="http://127.0.0.1:%d/" % srv.port)
                session = dt.call("Target.attachToTarget", targetId=target["targetId"],
                                  flatten=True)["sessionId"]
                dt.call("Runtime.enable", session)
                time.sleep(3)
                a = probe(dt, session)
                time.sleep(2)
                b = probe(dt, session)
                print("first:", a)
                print("later:", b)
                assert a["samples"] >= 3, a
                assert b["samples"] >= a["samples"] + 2, (a, b)      # still polling
                assert b["frame"] > a["frame"], (a, b)               # live numbers
                assert b["msgsOut"] > a["msgsOut"], (a, b)
                assert b["players"] > 0, b
                assert all(n > 200 for n in b["ink"]), b["ink"]      # every chart drew
                png = base64.b64decode(dt.call("Page.captureScreenshot", session)["data"])
                with open(shot, "wb") as f:
                    f.write(png)
                print("screenshot:", os.path.abspath(shot), len(png), "bytes")
            finally:
                dt.close()
            bots.join(60)
            assert srv.stop() == 0, srv.output()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
