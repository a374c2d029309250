"""Similar problems for test-time training (TT-SI, Acikgoz et al. 2025): from one problem, a new one that
exercises the same skills, solved by the writer."""

import dspy


class WriteSimilarProblem(dspy.Signature):
    """Write one new problem that is similar to the given problem: the same kind of task, needing the same
    steps and skills, but with different names, objects and numbers, so it is a different problem. It must be
    complete and answerable on its own. Then solve your new problem step by step and give its final answer."""

    problem: str = dspy.InputField(desc="the original problem")
    new_problem: str = dspy.OutputField(desc="the new, similar problem (not the original one)")
    solution: str = dspy.OutputField(desc="a short step-by-step solution of the new problem")
    answer: str = dspy.OutputField(desc="the final answer of the new problem, alone (e.g. a number)")
