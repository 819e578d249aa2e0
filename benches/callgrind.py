"""Reads `callgrind_annotate --inclusive=yes --tree=caller` output, for the scripts beside it
(`layer_instructions.sh`, `overhead_instructions.sh`)."""

import re
import sys


class Annotated:
    """One annotated callgrind profile."""

    def __init__(self, path):
        self.lines = open(path).read().split("\n")

    def total(self):
        """Instructions of the whole program."""
        line = next(l for l in self.lines if "PROGRAM TOTALS" in l)
        return int(line.split()[0].replace(",", ""))

    def inclusive(self, name, required=True):
        """Inclusive instructions of the function whose name starts with `name`, and how many
        times it was called; (0, 0) when it never ran and is not `required`."""
        for i, line in enumerate(self.lines):
            if "*  " in line and line.split("*  ", 1)[1].startswith("???:" + name):
                calls, j = 0, i - 1
                while j >= 0 and "<" in self.lines[j]:
                    m = re.search(r"\(([\d,]+)x\)", self.lines[j])
                    calls += int(m.group(1).replace(",", "")) if m else 0
                    j -= 1
                return int(line.split()[0].replace(",", "")), calls
        if required:
            sys.exit(f"{name} not found in the callgrind output")
        return 0, 0
