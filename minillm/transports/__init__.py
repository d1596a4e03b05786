"""Transports: how a request reaches a model and its response comes back.

The requests-based transport goes over the network; the in-process one
answers ``local/<engine>`` requests without a socket. The client picks one
by the URL scheme of a route's base URL.
"""
