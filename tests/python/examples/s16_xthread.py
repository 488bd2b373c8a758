import scheduler as s, threading, time
c = s.channel()
def other():
    t = s.tasklet(lambda: print("receiver got", c.receive()))()
    while t.alive:
        s.run(); time.sleep(0.001)
th = threading.Thread(target=other); th.start()
while c.balance != -1: time.sleep(0.001)
c.send("hello"); print("send returned on main"); th.join()
c2 = s.channel(); box = {}
def blocked():
    try: c2.receive()
    except s.TaskletExit: print("blocked tasklet got TaskletExit at thread end"); raise
def other2():
    box["b"] = s.tasklet(blocked)(); s.run()
    box["n"] = s.tasklet(lambda: print("never runs"))()
    print("thread returning; balance", c2.balance)
th = threading.Thread(target=other2); th.start(); th.join()
print("after thread end: balance", c2.balance, "alive/thread_id", [(v.alive, v.thread_id) for v in box.values()])
