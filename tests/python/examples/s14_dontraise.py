import scheduler as s, sys
sys.stderr = sys.stdout
def bad(): raise TypeError("test")
class CM:
    def __init__(self, t): self.t = t
    def __enter__(self): print("enter", self.t.method_name)
    def __exit__(self, *a): print("exit", a)
t = s.tasklet(); t.dont_raise = True; t.context_manager_getter = CM; t.bind(bad); t.setup()
t.context = "extra info"
t.exception_handler = lambda info: print("handler:", info, "| exc_info:", sys.exc_info()[0].__name__)
s.tasklet(lambda: print("next one runs"))()
s.run(); print("run did not raise; alive", t.alive)
try: t.dont_raise = False
except RuntimeError as e: print("RuntimeError:", e)
def h(info): raise RuntimeError("handler failed")
t5 = s.tasklet(); t5.dont_raise = True; t5.bind(bad); t5.exception_handler = h; t5.setup(); s.run(); print("still no raise")
t4 = s.tasklet(lambda: print("body")); t4.context_manager_getter = CM; t4(); s.run()
