import scheduler as s
def log(x): print(x)
def inner_runner():
    print("runner start"); s.tasklet(log)("made-in-runner"); s.run(); print("runner end")
s.tasklet(inner_runner)(); s.tasklet(log)("after-runner")
s.run()
