"""Model-based differential test (docs/reliability.md): a fixed range of
random programs must produce the same event trace on the real module and on
the pure-Python model of the documented semantics (model.py). `tools/dev
fuzz N [SEED]` runs more."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import program  # noqa: E402

FIRST, COUNT = 1, 2000


class ModelAgreement(unittest.TestCase):
    def test_fixed_seed_range(self):
        program.OUT_OF_SCOPE[0] = 0
        found = program.check_range(FIRST, COUNT)
        if found is not None:
            seed, prog, real, model = found
            self.fail("seed %d differs from the model; minimized:\n%s\nmodule: %s\nmodel:  %s"
                      % (seed, program.program_text(prog), real, model))
        # programs the model leaves out (a loop re-entering a loop owner)
        # stay rare, or the comparison would prove little
        self.assertLess(program.OUT_OF_SCOPE[0], COUNT // 20)

    def test_model_catches_a_wrong_rule(self):
        # The comparison has teeth: a model with the receiver preference
        # rule inverted disagrees within the range.
        import model
        original = model.Model.main_send

        def wrong(self, ch, v):
            ch.preference = -ch.preference
            try:
                return original(self, ch, v)
            finally:
                ch.preference = -ch.preference
        model.Model.main_send = wrong
        try:
            self.assertIsNotNone(program.check_range(FIRST, 300))
        finally:
            model.Model.main_send = original

    def test_model_catches_wrong_nested_rules(self):
        # Each rule of the extended model matters: a model that runs a
        # nested tasklet.run() as a one-tasklet switch, that lets a pending
        # throw take a waiter off its channel, that yields to a partner
        # under the switch trap, or that ignores schedule_all, disagrees too.
        import model
        for name, wrong in (
                ("run_tasklet", lambda self, cur, t: (
                    self.append(t), self.run_segment(cur, t, True))[1]
                    if self.nested and t is not cur else self._orig(cur, t)),
                ("throw", lambda self, cur, t, exc, pending: (
                    self.remove_from_channel(t) if t.alive and t is not cur else None,
                    self._orig(cur, t, exc, pending))[1]),
                ("yield_to_partner", lambda self, c: (
                    self.unqueue(c), self.append(c), self.suspend(c, "yield"))[2])):
            original = getattr(model.Model, name)
            model.Model._orig = original
            setattr(model.Model, name, wrong)
            try:
                self.assertIsNotNone(program.check_range(FIRST, COUNT), name)
            finally:
                setattr(model.Model, name, original)
                del model.Model._orig
        # schedule_all ignored: the preference decides
        original = model.MChannel.rule
        model.MChannel.rule = lambda self, sending: (
            (self.preference == (-1 if sending else 1),) * 2)
        try:
            self.assertIsNotNone(program.check_range(FIRST, COUNT), "schedule_all")
        finally:
            model.MChannel.rule = original


if __name__ == "__main__":
    unittest.main()
