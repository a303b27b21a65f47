"""The baseline for dispatch: rq's own rate for a job that does nothing."""


def noop(request_id: str) -> str:
    return request_id
