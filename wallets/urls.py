from django.urls import path

from wallets import staff_views, views

urlpatterns = [
    path("wallet", views.WalletView.as_view(), name="wallet"),
    path("wallet/transactions", views.TransactionListView.as_view(), name="wallet-transactions"),
    path("wallet/deposits", views.DepositCreateView.as_view(), name="wallet-deposits"),
    path("wallet/deposits/<str:deposit_id>", views.DepositDetailView.as_view(), name="wallet-deposit"),
    path("wallet/withdrawals", views.WithdrawalListCreateView.as_view(), name="wallet-withdrawals"),
    path("wallet/withdrawals/<str:withdrawal_id>", views.WithdrawalDetailView.as_view(), name="wallet-withdrawal"),
    path("staff/withdrawals", staff_views.StaffWithdrawalListView.as_view(), name="staff-withdrawals"),
    path(
        "staff/withdrawals/<str:withdrawal_id>/approve",
        staff_views.StaffWithdrawalDecisionView.as_view(approve=True),
        name="staff-withdrawal-approve",
    ),
    path(
        "staff/withdrawals/<str:withdrawal_id>/reject",
        staff_views.StaffWithdrawalDecisionView.as_view(approve=False),
        name="staff-withdrawal-reject",
    ),
]
