import scheduler, sys
scheduler.set_use_nested_tasklets(sys.argv[1] == "nested")
def foo(i): print(i)
def bar():
    t4 = scheduler.tasklet(foo)("Dog")
    t5 = scheduler.tasklet(foo)("Cat")
    t6 = scheduler.tasklet(foo)("Monkey")
    t4.run()
    print("End of Tasklet")
t1 = scheduler.tasklet(foo)("Rabbit")
t2 = scheduler.tasklet(bar)()
t3 = scheduler.tasklet(foo)("Donkey")
scheduler.run()
