"""Accounting: everything that turns a finished attempt into money in a
ledger -- settlement (what an attempt books), pricing and the price catalog,
out-of-band cost look-ups, sinks, budgets and the ledgers themselves.

Nothing here sends a request or parses a wire format: it receives what an
attempt saw and decides what it cost. The one exception is
:mod:`~minillm.accounting.reconcile`, which reads the providers' own
accounts -- through a client's route, as a look-up does -- to set a ledger
beside them.
"""
