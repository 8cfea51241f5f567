"""NEAR program search: partial programs with neural relaxations for their holes, explored
by A*, iterative-deepening branch-and-bound or size-ordered enumeration.

    from neurosym.search import synthesize
    result = synthesize("basic_motions", algorithm="astar", time_limit=120)
    print(result.best.text, result.best.evaluation.test)
"""

from neurosym.search.algorithms import Budget, Progress, SearchStats
from neurosym.search.graph import Node, ProgramGraph
from neurosym.search.productions import Production, ProductionSet, load_productions
from neurosym.search.synthesis import FoundProgram, SearchResult, production_set, synthesize

__all__ = [
    "Budget", "FoundProgram", "Node", "Production", "ProductionSet", "ProgramGraph",
    "Progress", "SearchResult", "SearchStats", "load_productions", "production_set",
    "synthesize",
]
