from django.http import HttpRequest, JsonResponse


def ping(request: HttpRequest) -> JsonResponse:
    """No database, no cache: the framework's own ceiling under the same middleware."""
    return JsonResponse({"pong": True})
