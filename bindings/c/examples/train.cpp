// Builds an LSTM through the C++ wrapper and trains it on a synthetic task:
// predict, at every step, the running mean of the first input feature over
// the last 4 steps (it needs memory). Prints the falling loss; exits non-zero
// if it did not fall by 10x.
//
// usage: train [STEPS]
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "rnn.hpp"

int main(int argc, char **argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 150;
    const std::size_t T = 16, B = 8, I = 2, H = 12;
    try {
        // 1 layer of 12 LSTM units, then the first output unit is read as
        // the prediction; other units are free (target = 0 keeps them small).
        rnn::Model model(rnn::Config(RNN_CELL_KIND_LSTM, I, H).with_seed(1));
        rnn::Trainer trainer(model);
        rnn_adam_config ac = rnn::Optimizer::adam_defaults(0.01);
        rnn::Optimizer adam = rnn::Optimizer::adam(ac);

        unsigned long long s = 12345;
        auto uniform = [&s] {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            return (float)((double)(s >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
        };
        std::vector<float> x(T * B * I), target(T * B * H);
        double first = 0.0, last = 0.0;
        for (int step = 0; step < steps; step++) {
            for (auto &v : x) v = uniform();
            std::fill(target.begin(), target.end(), 0.0f);
            for (std::size_t b = 0; b < B; b++)
                for (std::size_t t = 0; t < T; t++) {
                    float sum = 0.0f;
                    for (std::size_t k = 0; k < 4 && k <= t; k++) sum += x[((t - k) * B + b) * I];
                    target[(t * B + b) * H] = sum / 4.0f;
                }
            double loss = trainer.step_mse(model, adam, x, T, B, target, 1.0f);
            if (step == 0) first = loss;
            last = loss;
            if (step % 25 == 0 || step == steps - 1) std::printf("step %4d  loss %.6f\n", step, loss);
        }
        std::printf("loss %.6f -> %.6f\n", first, last);
        return last < first / 10.0 ? 0 : 1;
    } catch (const rnn::Error &e) {
        std::fprintf(stderr, "librnn error (status %d): %s\n", (int)e.status(), e.what());
        return 1;
    }
}
