"""The exceptions ckpt raises.

Every error derives from :class:`CkptError`, so a caller can catch the whole
family at once, or one of the specific subclasses below.  Each carries a
message written for a person: what is wrong and, where there is one, what to
do about it.
"""

from __future__ import annotations


class CkptError(Exception):
    """Root of every error ckpt raises on purpose."""


class NotFoundError(CkptError, LookupError):
    """Something that was asked for does not exist (object, job, ref, stage, store)."""


class ObjectNotFoundError(NotFoundError):
    """An object id names no stored object.

    Reached through a job, it also names the ``job``, ``commit`` and ``stage``
    (see :func:`in_context`); otherwise those are None.
    """

    job: str | None = None
    commit: str | None = None
    stage: str | None = None

    def __init__(self, object_id: str, detail: str = "") -> None:
        self.object_id = object_id
        self.detail = detail
        msg = f"object {object_id} not found in the store"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class StoreNotFoundError(NotFoundError):
    """No ckpt store at the given place."""


class StoreExistsError(CkptError):
    """``init`` was asked to create a store where one already exists."""


class ConflictError(CkptError):
    """A compare-and-swap lost a race: the ref moved since it was read."""


class CorruptObjectError(CkptError):
    """Stored bytes are not what their id promises.

    ``expected`` and ``actual`` hold what was expected vs found (a hash, a
    header field, a length), so that a report can show both.  Reached
    through a job, it also names the ``job``, ``commit`` and ``stage`` (see
    :func:`in_context`); otherwise those are None.
    """

    job: str | None = None
    commit: str | None = None
    stage: str | None = None

    def __init__(self, object_id: str, reason: str, expected: str = "", actual: str = "") -> None:
        self.object_id = object_id
        self.reason = reason
        self.expected = expected
        self.actual = actual
        msg = f"object {object_id} is corrupt: {reason}"
        if expected or actual:
            msg += f" (expected {expected or '?'}, found {actual or '?'})"
        super().__init__(msg)


class CorruptRefError(CkptError):
    """A ref, HEAD, reflog line or job record cannot be parsed."""


class InvalidNameError(CkptError, ValueError):
    """A job, branch, tag or stage name (or an object id) is not acceptable."""


class InvalidRevisionError(NotFoundError):
    """A revision string does not name a commit of the job."""


class SerializationError(CkptError, TypeError):
    """A value cannot be turned into canonical bytes, or bytes into the asked type."""


class FileValueError(SerializationError):
    """A ``ckpt.File`` or ``ckpt.Directory`` cannot be stored: the path is missing, is not
    a regular file (or directory), holds a special file or a name that is not UTF-8, or
    its content changed while it was being read."""


class StorageError(CkptError, OSError):
    """The storage backend failed (disk full, I/O error, network) while reading or writing.

    ``errno`` holds the operating system's error number where there is one.
    """

    def __str__(self) -> str:
        return self.strerror if isinstance(self.strerror, str) else super().__str__()


def in_context(
    exc: CorruptObjectError | ObjectNotFoundError,
    *,
    job: str,
    commit: str | None = None,
    stage: str | None = None,
) -> CorruptObjectError | ObjectNotFoundError:
    """The same error, of the same class, whose message and fields also name the job, the
    commit and the stage through which the damaged object was reached."""
    if isinstance(exc, CorruptObjectError):
        new: CorruptObjectError | ObjectNotFoundError = CorruptObjectError(
            exc.object_id, exc.reason, exc.expected, exc.actual
        )
    else:
        new = ObjectNotFoundError(exc.object_id, exc.detail)
    where = [f"job {job!r}"]
    if commit is not None:
        where.append(f"commit {commit[:12]}")
    if stage is not None:
        where.append(f"stage {stage!r}")
    new.args = (f"{', '.join(where)}: {exc}",)
    new.job, new.commit, new.stage = job, commit, stage
    return new


class CkptWarning(UserWarning):
    """Root of the warnings ckpt gives: something was done, but maybe not what was meant."""


class AmbiguousRevisionWarning(CkptWarning):
    """A revision word names more than one thing (a branch and a stage, say); the message
    says which was used and how to write the other."""
