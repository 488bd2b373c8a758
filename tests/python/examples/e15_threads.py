import scheduler as s, threading, sys
sys.stderr = sys.stdout
m = s.get_schedule_manager()
print("managers", s.get_number_of_active_schedule_managers())
box = {}
def other():
    box["main"] = s.getmain(); box["tid"] = threading.get_ident()
    box["mgr_count"] = s.get_number_of_active_schedule_managers()
    box["t"] = s.tasklet(lambda: print("other-thread tasklet ran on", threading.get_ident() == box["tid"]))()
    box["ready"].set(); box["go"].wait()
    s.run()
box["ready"] = threading.Event(); box["go"] = threading.Event()
th = threading.Thread(target=other); th.start(); box["ready"].wait()
t = box["t"]
print("different main", box["main"] is not s.getmain(), "thread_id ok", t.thread_id == box["tid"], "mgrs in thread", box["mgr_count"])
print("run from other thread ->", t.run(), "still scheduled", t.scheduled)
for name, f in [("switch", t.switch), ("kill", t.kill), ("throw", lambda: t.throw(ValueError)), ("bind", lambda: t.bind(print)), ("setup", t.setup)]:
    try: f(); print(name, "ok")
    except RuntimeError as e: print(name, "->", e)
print("remove ->", t.remove() is t, t.scheduled)
print("insert ->", t.insert() is t, t.scheduled, "main runcount", s.getruncount())
box["go"].set(); th.join()
print("after join managers", s.get_number_of_active_schedule_managers())
