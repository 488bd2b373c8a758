import scheduler as s
c = s.channel()
def recv():
    print("about to receive")
    try: c.receive()
    except RuntimeError as e: print("in tasklet:", e)
t = s.tasklet(recv)(); t.block_trap = True
s.run()
with s.block_trap():
    print("main block_trap", s.getcurrent().block_trap)
    try: c.send(1)
    except RuntimeError as e: print("main send:", e)
print("after", s.getcurrent().block_trap)
try: t.block_trap = 1
except Exception as e: print(type(e).__name__, e)
# block_trap does not stop non-blocking op
def r2(): print("r2 got", c.receive())
s.tasklet(r2)().run()
s.getcurrent().block_trap = True
c.send("x"); print("send ok with block_trap (no block)")
s.getcurrent().block_trap = False
# switch_trap
def log(x): print(x)
s.tasklet(log)("never")
print("switch_trap(1) ->", s.switch_trap(1))
try: s.run()
except RuntimeError as e: print("run:", e)
try: s.schedule()
except RuntimeError as e: print("schedule:", e)
print("switch_trap(-1) ->", s.switch_trap(-1))
s.run()
try: s.switch_trap()
except Exception as e: print(type(e).__name__, e)
