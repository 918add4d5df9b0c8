"""The nutrition planning agent (NPA): meal plans from the USDA food database.

Its planner and knowledge arrive with the domain-agent change; in the simulator its role is
played by agents declaring the ``plan_meal`` capability.
"""
