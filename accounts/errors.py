from config.errors import ValidationFailed


class EmailTaken(ValidationFailed):
    default_message = "A user with this email already exists."


class WrongPassword(ValidationFailed):
    default_message = "The current password is wrong."
