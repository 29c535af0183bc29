"""The errors a user can cause and fix.

Every message names the bad thing and says what to do; the CLI prints it on one line and exits 1
(tracebacks only with ``--debug``).
"""


class QasicError(Exception):
    """Base class: an error in the user's input, not a bug in qasic."""


class ConfigError(QasicError):
    """An architecture or quantization config that cannot be built."""


class UnsupportedOpError(QasicError):
    """A model node that qasic cannot quantize or compile."""


class ProgramFormatError(QasicError):
    """A program file or instruction stream that is malformed."""


class InputError(QasicError):
    """Input data of the wrong shape, dtype or with NaNs."""


class VerificationError(ProgramFormatError):
    """A program the verifier (qasic.isa.verify) cannot prove safe: one line naming the program,
    the instruction, the field, its value and the limit."""
