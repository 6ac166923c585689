"""The gradebook verb: turn a folder of graded submissions into files an LMS imports in one step."""
from .books import FORMATS, GradebookProblems, write_gradebooks
from .roster import Roster, RosterError, load_roster

__all__ = ["FORMATS", "GradebookProblems", "Roster", "RosterError", "load_roster", "write_gradebooks"]
