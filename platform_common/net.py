"""Small network probes shared by health checks and port checks."""
import socket

import requests


def get_json(url: str, timeout: float):
    """The JSON body of a successful GET, or None when the service is unreachable, slow or answers an error."""
    try:
        response = requests.get(url, timeout=timeout)
        return response.json() if response.ok else None
    except (requests.RequestException, ValueError):
        return None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
