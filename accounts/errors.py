from config.errors import AuthenticationFailed, ValidationFailed


class EmailTaken(ValidationFailed):
    default_message = "A user with this email already exists."


class WrongPassword(ValidationFailed):
    default_message = "The current password is wrong."


class OtpRequired(AuthenticationFailed):
    """A staff sign-in without a valid TOTP code while ``STAFF_OTP_REQUIRED`` (``DEBUG`` off)."""

    code = "otp_required"
    default_message = "Staff sign in with the current code of their authenticator app (otp)."
