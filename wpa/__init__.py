"""The workout planning agent (WPA): workout plans from the open exercise database.

Its planner and knowledge arrive with the domain-agent change; in the simulator its role is
played by agents declaring the ``plan_workout`` capability, whose yes vote offers the week's
training energy for the negotiation with the NPA.
"""
