import scheduler as s, sys, gc, weakref
print("managers before first use", s.get_number_of_active_schedule_managers())
print("getcurrent() is getcurrent():", s.getcurrent() is s.getcurrent(), "| managers", s.get_number_of_active_schedule_managers())
def f(): pass
t = s.tasklet(f); r0 = sys.getrefcount(t); t()
print("queue holds one ref:", sys.getrefcount(t) - r0); s.run(); print("released after run:", sys.getrefcount(t) - r0)
w = weakref.ref(s.tasklet(f)()); gc.collect(); print("queued tasklet kept alive by queue:", w() is not None); s.run(); gc.collect(); print("after run:", w())
c = s.channel(); w = weakref.ref(s.tasklet(c.receive)()); s.run(); gc.collect()
print("blocked tasklet kept alive by channel:", w() is not None, "| channels", s.get_number_of_active_channels())
print("unblock_all_channels ->", s.unblock_all_channels(), "| tasklet freed:", w() is None)
print("active tasklets", s.get_active_tasklet_count(), "all time", s.get_all_time_tasklet_count())
