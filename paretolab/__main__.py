"""``python -m paretolab``: the ``paretolab`` command."""

from paretolab.flows.cli import main

if __name__ == "__main__":
    main()
