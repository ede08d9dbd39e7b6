"""Thin Tornado handlers: parse, call a service, render."""
