"""The one exception type for problems a user of mie caused and can fix."""


class MieInputError(ValueError):
    """Bad input: a missing or unreadable clip, no face, a clip too long or too large, ...

    The message always says what was wrong and what to do about it. Catch this type to tell a
    person; any other exception is a bug in mie.
    """
