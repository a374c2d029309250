"""`python -m synthloop ...` is the `synthloop` command."""

from synthloop.cli import main

if __name__ == "__main__":  # required: vLLM spawns engine processes that re-import __main__
    main()
