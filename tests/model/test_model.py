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
        found = program.check_range(FIRST, COUNT)
        if found is not None:
            seed, prog, real, model = found
            self.fail("seed %d differs from the model; minimized:\n%s\nmodule: %s\nmodel:  %s"
                      % (seed, program.program_text(prog), real, model))

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


if __name__ == "__main__":
    unittest.main()
