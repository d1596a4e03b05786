"""What was spent, for people: the ``minillm costs`` command family.

Bookings read from a ledger are grouped (:mod:`.groups`), printed as a
table, CSV or JSON (:mod:`.formats`), or drawn into one self-contained
HTML page (:mod:`.html`, with inline SVG charts from :mod:`.svg`) that can
also show a reconciliation's drift (:mod:`.drift`). Nothing here is
imported by ``import minillm``; the command imports it when it runs.
"""
